-- Supabase compatibility layer: creates only what the target database lacks.
-- On a hosted Supabase project every object below already exists and nothing here changes it.
-- Definitions of auth.uid(), auth.role() and auth.jwt() are Supabase's own.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
    alter role anon set statement_timeout = '3s';
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
    alter role authenticated set statement_timeout = '8s';
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
    alter role authenticator set statement_timeout = '8s';
  end if;
end
$$;

grant anon, authenticated, service_role to authenticator;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;
grant usage on schema public to anon, authenticated, service_role;

create table if not exists auth.users (
  id uuid primary key default gen_random_uuid(),
  email text unique,
  raw_app_meta_data jsonb not null default '{}'::jsonb,
  raw_user_meta_data jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  is_anonymous boolean not null default false
);

do $$
begin
  if not exists (
    select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'auth' and p.proname = 'uid'
  ) then
    execute $fn$
      create function auth.uid() returns uuid language sql stable as $body$
        select coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
        )::uuid
      $body$
    $fn$;
  end if;
  if not exists (
    select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'auth' and p.proname = 'role'
  ) then
    execute $fn$
      create function auth.role() returns text language sql stable as $body$
        select coalesce(
          nullif(current_setting('request.jwt.claim.role', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
        )::text
      $body$
    $fn$;
  end if;
  if not exists (
    select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'auth' and p.proname = 'jwt'
  ) then
    execute $fn$
      create function auth.jwt() returns jsonb language sql stable as $body$
        select coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $body$
    $fn$;
  end if;
end
$$;

-- GoTrue's own columns and tables (supabase/auth migrations), for the local auth server (/auth/v1).
-- Each column is added only when missing: on a hosted project they all exist, auth.users belongs to
-- supabase_auth_admin, and an `alter table` there (even a no-op one) would fail on ownership.
do $$
declare
  col record;
begin
  for col in
    select * from (values
      ('aud', 'varchar(255)'),
      ('role', 'varchar(255)'),
      ('encrypted_password', 'varchar(255)'),
      ('email_confirmed_at', 'timestamptz'),
      ('invited_at', 'timestamptz'),
      ('confirmation_sent_at', 'timestamptz'),
      ('recovery_sent_at', 'timestamptz'),
      ('email_change_sent_at', 'timestamptz'),
      ('last_sign_in_at', 'timestamptz'),
      ('updated_at', 'timestamptz'),
      ('phone', 'text'),
      ('phone_confirmed_at', 'timestamptz'),
      ('banned_until', 'timestamptz'),
      ('deleted_at', 'timestamptz'),
      ('is_sso_user', 'boolean not null default false')
    ) as c(name, definition)
  loop
    if not exists (
      select 1 from information_schema.columns
      where table_schema = 'auth' and table_name = 'users' and column_name = col.name
    ) then
      execute format('alter table auth.users add column %I %s', col.name, col.definition);
    end if;
  end loop;
  -- GoTrue's generated column: a user is confirmed when its email (or phone) is.
  if not exists (
    select 1 from information_schema.columns
    where table_schema = 'auth' and table_name = 'users' and column_name = 'confirmed_at'
  ) then
    alter table auth.users add column confirmed_at timestamptz
      generated always as (least(email_confirmed_at, phone_confirmed_at)) stored;
  end if;
end
$$;

create table if not exists auth.sessions (
  id uuid primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz,
  updated_at timestamptz,
  factor_id uuid,
  aal text,
  not_after timestamptz,
  refreshed_at timestamp,
  user_agent text,
  ip inet,
  tag text
);
create index if not exists sessions_user_id_idx on auth.sessions (user_id);

create table if not exists auth.refresh_tokens (
  instance_id uuid,
  id bigserial primary key,
  token varchar(255) unique,
  user_id varchar(255),
  revoked boolean,
  created_at timestamptz,
  updated_at timestamptz,
  parent varchar(255),
  session_id uuid references auth.sessions (id) on delete cascade
);
create index if not exists refresh_tokens_session_id_revoked_idx on auth.refresh_tokens (session_id, revoked);
create index if not exists refresh_tokens_parent_idx on auth.refresh_tokens (parent);
