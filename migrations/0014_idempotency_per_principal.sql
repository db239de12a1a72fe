-- Request ids are per caller: a retry is matched under (principal, method, request_id), where
-- principal is the caller's stable identity (`token:<id>` for a static token, `jwt:<iss> <sub>`
-- for a JWT, `cert:<CN>` for a client certificate, `unrestricted` with authentication off).
-- Under (method, request_id) alone, one caller's request id was refused to every other caller
-- (ALREADY_EXISTS), which told them another caller had used it.
alter table powerplane.idempotency_keys add column principal text;

-- Keys stored before keep the principal that made them where a row records it. A dispatch's
-- instructions carry their submitter.
update powerplane.idempotency_keys k
set principal = (
  select i.principal from powerplane.dispatch_instructions i
  where i.request_id = k.request_id
  order by i.created_at, i.id
  limit 1)
where k.method = 'SubmitDispatch';

-- A device's creator is in the audit trail: the principal of the first call with that request
-- id that completed (later ones were retries answered from the key).
update powerplane.idempotency_keys k
set principal = (
  select r.principal from powerplane.audit_log r
  where r.method = 'powerplane.v1.DeviceRegistryService/CreateDevice'
    and r.phase = 'requested'
    and r.request ->> 'requestId' = k.request_id
    and exists (select 1 from powerplane.audit_log c where c.call_id = r.call_id and c.phase = 'completed')
  order by r.id
  limit 1)
where k.method = 'CreateDevice';

-- Any other key gets a placeholder no caller has: it stays as a record, and a retry of its call
-- after this migration is a new request. (The same holds for a JWT caller's keys, recorded as
-- `jwt:<sub>` before the issuer became part of its identity.)
update powerplane.idempotency_keys set principal = 'legacy:unknown' where principal is null;

alter table powerplane.idempotency_keys alter column principal set not null;
alter table powerplane.idempotency_keys drop constraint idempotency_keys_pkey;
alter table powerplane.idempotency_keys add primary key (principal, method, request_id);
