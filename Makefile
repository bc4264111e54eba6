# sessmgr: user session management inside PostgreSQL.
#
#   make            build the extension (needs postgresql-server-dev-15)
#   make install    install it into the server found by $(PG_CONFIG)
#   make demo       install what is missing, then walk through the main job on a
#                   throwaway cluster
#   make test       install what is missing, then run every test suite on a
#                   throwaway cluster
#   make fuzz       fuzz the parsers of untrusted text (fuzz/), FUZZ_SECONDS
#                   (default 60) per target

EXTENSION = sessmgr
EXTVERSION = $(shell sed -n "s/^default_version = '\(.*\)'/\1/p" sessmgr.control)

MODULE_big = sessmgr
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA = $(sort $(wildcard sessmgr--*.sql))
SHLIB_LINK += -lcrypto
SHLIB_LINK += -lpcre2-8 -lyaml
SHLIB_LINK += -lmaxminddb

# -Wextra's unused-parameter fires on every PG_FUNCTION_ARGS and in the server
# headers; everything else it reports is fixed, not silenced.
PG_CPPFLAGS = -Wall -Wextra -Wno-unused-parameter -DSESSMGR_VERSION='"$(EXTVERSION)"'

# pg_regress suites live in sql/ and expected/; isolation specs in test/isolation
REGRESS = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS = --load-extension=sessmgr
ISOLATION = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --load-extension=sessmgr

EXTRA_CLEAN = output_iso results regression.diffs regression.out tmp_check fuzz/build

PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all:
	@echo "PostgreSQL server headers not found: run 'make demo' or 'make test'," >&2
	@echo "which install postgresql-server-dev-15, or set PG_CONFIG." >&2
	@exit 1
endif

# every object depends on the shared headers (PGXS tracks no header dependencies)
$(OBJS): src/sessmgr.h src/parse.h
src/uarules.o src/uadevice.o src/useragent.o: src/useragent.h

.PHONY: demo test bench fuzz

demo:
	bash test/demo.sh

test:
	bash test/run.sh

bench:
	bash bench/run.sh $(BENCH_ARGS)

fuzz:
	FUZZ_SECONDS="$(FUZZ_SECONDS)" bash fuzz/run.sh fuzz $(FUZZ_TARGETS)
