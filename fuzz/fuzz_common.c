/*-------------------------------------------------------------------------
 *
 * fuzz_common.c
 *	  A per-input allocator for the harnesses, standing in for the backend
 *	  memory context that src/parse.c's allocations live in.
 *
 * palloc and friends are defined here, so the linker does not take
 * libpgcommon's fe_memutils.o (whose palloc is plain malloc that the JSON
 * lexer never frees).  Every block goes on a list that fuzz_reset() frees
 * after each input: the harness leaks nothing, and a pointer kept across
 * inputs is a use after free that AddressSanitizer reports.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres_fe.h"

#include <stdio.h>
#include <stdlib.h>

#include "fuzz_common.h"

typedef struct Chunk
{
	struct Chunk *prev;
	struct Chunk *next;
	size_t		size;
	/* the caller's bytes follow, maximally aligned */
} Chunk;

#define CHUNK_HDRSZ		MAXALIGN(sizeof(Chunk))
#define CHUNK_OF(p)		((Chunk *) ((char *) (p) - CHUNK_HDRSZ))
#define DATA_OF(c)		((void *) ((char *) (c) + CHUNK_HDRSZ))

static Chunk *chunks = NULL;

void
fuzz_fail(const char *what)
{
	fprintf(stderr, "sessmgr fuzz: invariant failed: %s\n", what);
	abort();
}

static void *
chunk_alloc(size_t size, bool zero)
{
	Chunk	   *c = zero ? calloc(1, CHUNK_HDRSZ + size) : malloc(CHUNK_HDRSZ + size);

	if (c == NULL)
		fuzz_fail("out of memory");
	c->size = size;
	c->prev = NULL;
	c->next = chunks;
	if (chunks != NULL)
		chunks->prev = c;
	chunks = c;
	return DATA_OF(c);
}

static void
chunk_unlink(Chunk *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		chunks = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
}

void *
palloc(Size size)
{
	return chunk_alloc(size, false);
}

void *
palloc0(Size size)
{
	return chunk_alloc(size, true);
}

void *
palloc_extended(Size size, int flags)
{
	return chunk_alloc(size, (flags & MCXT_ALLOC_ZERO) != 0);
}

void
pfree(void *pointer)
{
	Chunk	   *c = CHUNK_OF(pointer);

	chunk_unlink(c);
	free(c);
}

void *
repalloc(void *pointer, Size size)
{
	Chunk	   *old = CHUNK_OF(pointer);
	void	   *p = chunk_alloc(size, false);

	memcpy(p, pointer, Min(old->size, size));
	pfree(pointer);
	return p;
}

char *
pstrdup(const char *in)
{
	size_t		len = strlen(in);
	char	   *out = palloc(len + 1);

	memcpy(out, in, len + 1);
	return out;
}

char *
pnstrdup(const char *in, Size size)
{
	size_t		len = strnlen(in, size);
	char	   *out = palloc(len + 1);

	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

char *
fuzz_cstring(const uint8_t *data, size_t len)
{
	char	   *out = palloc(len + 1);

	memcpy(out, data, len);
	out[len] = '\0';
	return out;
}

void
fuzz_reset(void)
{
	while (chunks != NULL)
	{
		Chunk	   *c = chunks;

		chunks = c->next;
		free(c);
	}
}
