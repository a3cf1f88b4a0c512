# notify: PGXS build.  `make`, `make install`, `make installcheck` as usual;
# `scripts/test.sh` is the whole suite (pg_regress + TAP on scratch clusters).

EXTENSION = notify
EXTVERSION = $(shell grep default_version $(EXTENSION).control | sed -e "s/default_version[[:space:]]*=[[:space:]]*'\([^']*\)'/\1/")

MODULE_big = notify
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
HEADERS = $(wildcard src/*.h)

# The install script is kept in topic files (sql/NN_topic.sql), concatenated
# in name order into one versioned script; upgrade scripts are hand-written.
SQL_PARTS = $(sort $(wildcard sql/[0-9][0-9]_*.sql))
DATA_built = sql/$(EXTENSION)--$(EXTVERSION).sql
DATA = $(wildcard sql/$(EXTENSION)--*--*.sql)
EXTRA_CLEAN = sql/$(EXTENSION)--$(EXTVERSION).sql

TESTS = $(sort $(wildcard test/sql/*.sql))
REGRESS = $(patsubst test/sql/%.sql,%,$(TESTS))
REGRESS_OPTS = --inputdir=test --load-extension=$(EXTENSION)

PG_CPPFLAGS = -I$(srcdir)/src
# PostgreSQL's own headers have unused parameters; -Wextra must not fail on them.
PG_CFLAGS = -Wno-unused-parameter
SHLIB_LINK = -lcurl -lcjson

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

sql/$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	( printf '%s\n' '-- generated from sql/NN_*.sql by the Makefile; edit those files' \
	    '\echo Use "CREATE EXTENSION $(EXTENSION)" to load this file. \quit'; \
	  for f in $(SQL_PARTS); do echo; echo "-- ---- $$f ----"; cat $$f; done ) > $@

$(OBJS): $(HEADERS)

# The shipped templates (templates/) become version 1 of each template.
TEMPLATE_FILES = $(sort $(shell find $(srcdir)/templates -type f))
sql/60_default_templates.sql: scripts/templates-to-sql.sh $(TEMPLATE_FILES)
	scripts/templates-to-sql.sh --extension templates > $@
