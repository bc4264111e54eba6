/*-------------------------------------------------------------------------
 *
 * fuzz_common.h
 *	  Shared helpers of the libFuzzer harnesses for src/parse.c.
 *
 * The harnesses are frontend programs: src/parse.c is compiled with
 * FRONTEND defined and linked with libpgcommon/libpgport.  In the backend,
 * everything the parsers palloc() dies with the calling memory context;
 * here fuzz_common.c stands in for that context, so that nothing outlives
 * one input and AddressSanitizer sees every use after the "reset".
 *
 *-------------------------------------------------------------------------
 */
#ifndef SESSMGR_FUZZ_COMMON_H
#define SESSMGR_FUZZ_COMMON_H

#include "postgres_fe.h"

/* free everything palloc'd since the previous reset (end of one input) */
extern void fuzz_reset(void);

/* abort with a message: a broken invariant is a finding, like a crash */
extern void fuzz_fail(const char *what) pg_attribute_noreturn();

#define FUZZ_CHECK(cond) \
	do { if (!(cond)) fuzz_fail(#cond); } while (0)

/* a NUL-terminated heap copy of exactly len bytes, freed by fuzz_reset */
extern char *fuzz_cstring(const uint8_t *data, size_t len);

#endif							/* SESSMGR_FUZZ_COMMON_H */
