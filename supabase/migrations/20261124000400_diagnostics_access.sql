-- diagnostics (as service_role) compares applied migrations with the files it ships with.
-- Read-only, and only the ledger: nothing else in aitradex_meta is exposed.
grant usage on schema aitradex_meta to service_role;
grant select on table aitradex_meta.schema_migrations to service_role;
