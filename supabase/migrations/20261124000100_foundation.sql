-- Foundation: shared trigger functions, the append-only audit log, and live configuration.
-- Grants are explicit: every table starts with nothing granted to the API roles.

create or replace function public.set_updated_at() returns trigger
language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- audit_log: append-only. Nobody updates or deletes, not even the table owner (trigger below).
create table public.audit_log (
  id bigint generated always as identity primary key,
  user_id uuid,                       -- whose record changed: the row's owner, when it has one
  actor_id uuid,                      -- who changed it: auth.uid() of the caller, if any
  actor_role text not null,
  action text not null check (action in ('INSERT', 'UPDATE', 'DELETE')),
  table_name text not null,
  record_id text,
  old_values jsonb,
  new_values jsonb,
  ip inet,
  user_agent text,
  created_at timestamptz not null default now()
);
create index audit_log_user_created_idx on public.audit_log (user_id, created_at desc);
create index audit_log_table_record_idx on public.audit_log (table_name, record_id);

create or replace function public.audit_log_is_append_only() returns trigger
language plpgsql as $$
begin
  raise exception 'audit_log is append-only: % is not allowed', tg_op
    using errcode = 'insufficient_privilege';
end
$$;

create trigger audit_log_no_update_delete
  before update or delete on public.audit_log
  for each row execute function public.audit_log_is_append_only();
create trigger audit_log_no_truncate
  before truncate on public.audit_log
  for each statement execute function public.audit_log_is_append_only();

-- Writes one audit row per changed row. Trigger arguments name the columns to redact.
-- SECURITY DEFINER so that callers who may not touch audit_log still leave their trace.
create or replace function public.audit_row_change() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  old_values jsonb;
  new_values jsonb;
  col text;
  headers jsonb;
  client_ip inet;
begin
  if tg_op <> 'INSERT' then old_values := to_jsonb(old); end if;
  if tg_op <> 'DELETE' then new_values := to_jsonb(new); end if;
  if tg_op = 'UPDATE' and (old_values - 'updated_at') = (new_values - 'updated_at') then
    return null;  -- nothing but the timestamp changed: nothing to audit
  end if;
  foreach col in array coalesce(tg_argv, '{}'::text[]) loop
    if old_values ? col then old_values := old_values || jsonb_build_object(col, '[redacted]'); end if;
    if new_values ? col then new_values := new_values || jsonb_build_object(col, '[redacted]'); end if;
  end loop;

  headers := nullif(current_setting('request.headers', true), '')::jsonb;
  begin
    client_ip := split_part(headers ->> 'x-forwarded-for', ',', 1)::inet;
  exception when others then
    client_ip := null;  -- a malformed header must never block the user's write
  end;

  insert into public.audit_log
    (user_id, actor_id, actor_role, action, table_name, record_id, old_values, new_values, ip, user_agent)
  values (
    coalesce(new_values ->> 'user_id', old_values ->> 'user_id')::uuid,
    auth.uid(),
    coalesce(auth.role(), session_user::text),
    tg_op,
    tg_table_name,
    coalesce(new_values ->> 'id', old_values ->> 'id', new_values ->> 'user_id', old_values ->> 'user_id',
             new_values ->> 'key', old_values ->> 'key'),
    old_values,
    new_values,
    client_ip,
    headers ->> 'user-agent'
  );
  return null;
end
$$;

revoke all on function public.audit_row_change() from public;

alter table public.audit_log enable row level security;
revoke all on table public.audit_log from public, anon, authenticated, service_role;
grant select on table public.audit_log to authenticated;
grant select, insert on table public.audit_log to service_role;
create policy audit_log_owner_reads_own on public.audit_log
  for select to authenticated using (user_id = (select auth.uid()));

-- app_settings: the system's live configuration; service only.
create table public.app_settings (
  key text primary key check (key ~ '^[a-z][a-z0-9_.]*$'),
  value jsonb not null,
  description text not null default '',
  updated_at timestamptz not null default now(),
  updated_by uuid
);
create trigger app_settings_updated_at before update on public.app_settings
  for each row execute function public.set_updated_at();
create trigger app_settings_audit after insert or update or delete on public.app_settings
  for each row execute function public.audit_row_change();

alter table public.app_settings enable row level security;
revoke all on table public.app_settings from public, anon, authenticated, service_role;
grant select, insert, update, delete on table public.app_settings to service_role;
