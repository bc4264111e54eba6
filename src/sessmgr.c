/*-------------------------------------------------------------------------
 *
 * sessmgr.c
 *	  Module entry point of the sessmgr extension.
 *
 * sessmgr needs no shared memory and does not have to be preloaded; the
 * library is loaded by the first call of one of its functions.  Preloading
 * it (session_preload_libraries) only makes its settings known earlier.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "sessmgr.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	SessmgrDefineSettings();
	SessmgrCatalogInit();
	SessmgrIdentityInit();
	SessmgrJwtInit();
}
