-- notify: privileges.  PUBLIC gets nothing: the tables are readable only
-- by the extension owner (and superusers), and no function is executable
-- by PUBLIC.  An application role needs only
--   GRANT EXECUTE ON FUNCTION notify_enqueue(...) TO app;
-- (see docs/security.md).  This file runs last.

DO $$
DECLARE
	r record;
BEGIN
	FOR r IN
		SELECT p.oid::regprocedure AS fn
		FROM pg_catalog.pg_depend d
		JOIN pg_catalog.pg_proc p ON p.oid = d.objid AND d.classid = 'pg_catalog.pg_proc'::regclass
		WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
		  AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'notify')
		  AND d.deptype = 'e'
	LOOP
		EXECUTE format('REVOKE ALL ON ROUTINE %s FROM PUBLIC', r.fn);
	END LOOP;
END;
$$;
