-- Request ids that make mutating calls safe to retry: the first call's response is kept
-- under (method, request_id) with a hash of its payload, so a retry with the same payload
-- gets the same answer and a different payload under the same id is refused.
create table powerplane.idempotency_keys (
  method text not null,
  request_id text not null,
  payload_sha256 text not null,
  response bytea not null,
  created_at timestamptz not null default now(),
  primary key (method, request_id)
);
create index idempotency_keys_created_at_idx on powerplane.idempotency_keys (created_at);
