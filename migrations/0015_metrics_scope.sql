-- `/metrics` names every site and its live power, so it needs the `metrics:read` scope.
-- Unrestricted token administrators (the first-start admin token among them) get the scope:
-- they could read `/metrics` without any token before, and without it no one could grant it.
-- Tokens bound to sites do not get it: `/metrics` shows every site, not only theirs.

update powerplane.api_tokens
   set scopes = array_append(scopes, 'metrics:read')
 where 'tokens:admin' = any(scopes)
   and sites is null
   and not ('metrics:read' = any(scopes));
