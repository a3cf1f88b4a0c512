-- upgrade path: install the first version, then walk ALTER EXTENSION UPDATE
-- through every later one.  Add each new version here as it is released.
SET client_min_messages = warning;
DROP EXTENSION notify CASCADE;
CREATE EXTENSION notify VERSION '0.1';
SELECT extversion FROM pg_extension WHERE extname = 'notify';
ALTER EXTENSION notify UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'notify';
SELECT default_version = installed_version AS at_default
FROM pg_available_extensions WHERE name = 'notify';
-- every object has a comment, so \d+ documents the system
SELECT count(*) AS uncommented
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'notify')
  AND d.deptype = 'e'
  AND obj_description(d.objid, d.classid::regclass::text) IS NULL;
SELECT pg_describe_object(d.classid, d.objid, 0)
FROM pg_depend d
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'notify')
  AND d.deptype = 'e'
  AND obj_description(d.objid, d.classid::regclass::text) IS NULL
ORDER BY 1;
