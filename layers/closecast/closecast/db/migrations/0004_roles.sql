-- 0004: the database roles the functions use; only the migrate function uses the master user.
--   closecast_reader: the GET paths. SELECT only.
--   closecast_writer: ingest, POST, jobs. SELECT, INSERT, UPDATE, DELETE; no DDL, owns nothing.
-- Neither may create objects in the schema. Both sign in through the Data API with their own Secrets Manager
-- secret; the migrate function sets each role's password from its secret after every run (never in SQL).
-- Tables and views created by later migrations get the same rights (default privileges of the master user).

DO $$
BEGIN
    BEGIN
        CREATE ROLE closecast_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;  -- roles belong to the whole server: another database of it made it already
    END;
    BEGIN
        CREATE ROLE closecast_writer LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
    END;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;

GRANT USAGE ON SCHEMA public TO closecast_reader, closecast_writer;

GRANT SELECT ON ALL TABLES IN SCHEMA public TO closecast_reader;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO closecast_writer;

GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO closecast_writer;

-- the migrations' own record is the master user's alone to change
REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON schema_migrations FROM closecast_writer;

ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO closecast_reader;

ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO closecast_writer;

ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO closecast_writer;

-- Sets a role's password from a parameter (ALTER ROLE takes no bind parameters); the master user alone may call it.
CREATE FUNCTION closecast_set_role_password(role_name text, new_password text) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF role_name NOT IN ('closecast_reader', 'closecast_writer') THEN
        RAISE EXCEPTION 'not a closecast role: %', role_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('ALTER ROLE %I WITH LOGIN PASSWORD %L', role_name, new_password);
END
$$;

REVOKE ALL ON FUNCTION closecast_set_role_password(text, text) FROM PUBLIC;
