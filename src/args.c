/*-------------------------------------------------------------------------
 *
 * args.c
 *	  Checking the arguments of sessmgr's functions.
 *
 * Each rule about an argument is written once here.  Errors name the
 * argument, never echo its value, and judge a long value by its size before
 * reading it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "fmgr.h"

#include "sessmgr.h"

/*
 * Refuse an argument longer than max_bytes, judged by its size before any
 * detoasting (a 10 MB argument is refused without being read).  The error
 * names the argument, never its value.
 */
void
SessmgrCheckText(Datum value, const char *what, int max_bytes)
{
	if (toast_raw_datum_size(value) - VARHDRSZ > (Size) max_bytes)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is too long", what),
				 errdetail("The limit is %d bytes.", max_bytes)));
}

/*
 * The user id argument argno: not NULL, at most SESSMGR_MAX_USER_ID_BYTES,
 * and not empty unless allow_empty (an empty one then matches nobody).
 * hint, if not NULL, goes with the NULL error.
 */
text *
SessmgrCheckUserId(FunctionCallInfo fcinfo, int argno, bool allow_empty, const char *hint)
{
	text	   *user_id;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("user id must not be null"),
				 hint ? errhint("%s", hint) : 0));
	SessmgrCheckText(PG_GETARG_DATUM(argno), "user id", SESSMGR_MAX_USER_ID_BYTES);
	user_id = PG_GETARG_TEXT_PP(argno);
	if (!allow_empty && VARSIZE_ANY_EXHDR(user_id) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("user id must not be empty")));
	return user_id;
}
