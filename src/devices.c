/*-------------------------------------------------------------------------
 *
 * devices.c
 *	  What a session is recognised by: its device and its place, derived at
 *	  issuance (issue.c) from the user agent (useragent.c) and the address
 *	  (geoip.c), and derived again for the live sessions after the rules or
 *	  the database were updated: sessmgr.refresh_devices().
 *
 * refresh_devices walks the live sessions in id order, a batch per
 * transaction (as sessmgr.cleanup does: called with CALL outside a
 * transaction block, each batch commits), and locks only the rows it
 * updates, with SKIP LOCKED: it never waits for a row lock, so it cannot
 * take part in a deadlock whatever the lock order of the other writers; a
 * session somebody is working on keeps its values until the next run.  The
 * caller's location text is left alone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "nodes/parsenodes.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

#include "sessmgr.h"

#define DEVICES_MAX_BATCH	100000
#define DEVICES_NCOLUMNS	12

/* Text for a statement parameter, NULL (nulls[i] = 'n') when absent. */
void
SessmgrTextParam(Datum *values, char *nulls, int i, const char *s)
{
	values[i] = s != NULL ? CStringGetTextDatum(s) : (Datum) 0;
	nulls[i] = s != NULL ? ' ' : 'n';
}

/*
 * The device and the place as statement parameters from values[first] on,
 * in the order of the sessions table's columns device .. asn.
 */
void
SessmgrDevicePlaceParams(const SessmgrDevice *device, const SessmgrPlace *place,
						 Datum *values, char *nulls, int first)
{
	SessmgrTextParam(values, nulls, first + 0, device->label);
	SessmgrTextParam(values, nulls, first + 1, device->browser);
	SessmgrTextParam(values, nulls, first + 2, device->os);
	SessmgrTextParam(values, nulls, first + 3, device->device_type);
	SessmgrTextParam(values, nulls, first + 4, place->country_code);
	SessmgrTextParam(values, nulls, first + 5, place->country);
	SessmgrTextParam(values, nulls, first + 6, place->region);
	SessmgrTextParam(values, nulls, first + 7, place->city);
	values[first + 8] = Float8GetDatum(place->latitude);
	values[first + 9] = Float8GetDatum(place->longitude);
	nulls[first + 8] = nulls[first + 9] = place->has_coordinates ? ' ' : 'n';
	values[first + 10] = Int32GetDatum(place->accuracy_radius_km);
	nulls[first + 10] = place->accuracy_radius_km >= 0 ? ' ' : 'n';
	values[first + 11] = Int64GetDatum(place->asn);
	nulls[first + 11] = place->asn >= 0 ? ' ' : 'n';
}

/* The types of those parameters. */
const Oid	SessmgrDevicePlaceTypes[DEVICES_NCOLUMNS] = {
	TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	FLOAT8OID, FLOAT8OID, INT4OID, INT8OID
};

/* Derive the device and the place of a session from what it was issued with. */
void
SessmgrDeriveDevicePlace(text *user_agent, inet *ip, Jsonb *client_hints,
						 SessmgrDevice *device, SessmgrPlace *place)
{
	/* no user agent, no device: "Other" would claim one was seen */
	if (user_agent == NULL)
		memset(device, 0, sizeof(*device));
	else
		(void) SessmgrDescribeUserAgent(VARDATA_ANY(user_agent),
										VARSIZE_ANY_EXHDR(user_agent),
										client_hints, device);
	SessmgrLocateRequest(ip, place);
}

/*
 * sessmgr.refresh_devices(batch_size integer DEFAULT 1000,
 *						   INOUT sessions_updated bigint DEFAULT NULL)
 *
 * A procedure.  Derive the device and the place of every live session again;
 * returns how many sessions it updated.  Administrators only.
 */
PG_FUNCTION_INFO_V1(sessmgr_refresh_devices);
Datum
sessmgr_refresh_devices(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr batch_plan = NULL;
	static SPIPlanPtr update_plan = NULL;
	Oid			batch_types[2] = {UUIDOID, INT4OID};
	Oid			update_types[1 + DEVICES_NCOLUMNS];
	Datum		values[1 + DEVICES_NCOLUMNS];
	char		nulls[1 + DEVICES_NCOLUMNS];
	pg_uuid_t	last;
	int			batch_size;
	bool		atomic;
	int64		updated = 0;
	TupleDesc	desc;
	Datum		result[1];
	bool		result_nulls[1] = {false};

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("batch size must not be null")));
	batch_size = PG_GETARG_INT32(0);
	if (batch_size < 1 || batch_size > DEVICES_MAX_BATCH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch size must be between 1 and %d", DEVICES_MAX_BATCH)));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "sessmgr.refresh_devices must return a record");
	desc = BlessTupleDesc(desc);

	update_types[0] = UUIDOID;
	memcpy(update_types + 1, SessmgrDevicePlaceTypes, sizeof(SessmgrDevicePlaceTypes));
	memset(&last, 0, sizeof(last));
	atomic = !(fcinfo->context != NULL && IsA(fcinfo->context, CallContext) &&
			   !castNode(CallContext, fcinfo->context)->atomic);
	if (SPI_connect_ext(atomic ? 0 : SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	for (;;)
	{
		SessmgrOwnerContext octx;
		SPITupleTable *rows;
		uint64		n;

		SessmgrEnterOwnerMode(&octx);
		values[0] = UUIDPGetDatum(&last);
		values[1] = Int32GetDatum(batch_size);
		n = SessmgrRun(&batch_plan,
					   "SELECT id, user_agent, ip, client_hints FROM sessmgr.sessions"
					   " WHERE id OPERATOR(pg_catalog.>) $1"
					   "   AND " SESSMGR_LIVE_SQL("", "pg_catalog.now()")
					   " ORDER BY id LIMIT $2"
					   " FOR UPDATE SKIP LOCKED",
					   2, batch_types, values, NULL, SPI_OK_SELECT);
		rows = SPI_tuptable;
		for (uint64 i = 0; i < n; i++)
		{
			HeapTuple	row = rows->vals[i];
			bool		ua_null;
			bool		ip_null;
			bool		hints_null;
			Datum		id = SPI_getbinval(row, rows->tupdesc, 1, &ua_null);
			Datum		ua = SPI_getbinval(row, rows->tupdesc, 2, &ua_null);
			Datum		ip = SPI_getbinval(row, rows->tupdesc, 3, &ip_null);
			Datum		hints = SPI_getbinval(row, rows->tupdesc, 4, &hints_null);
			SessmgrDevice device;
			SessmgrPlace place;

			SessmgrDeriveDevicePlace(ua_null ? NULL : DatumGetTextPP(ua),
									 ip_null ? NULL : DatumGetInetPP(ip),
									 hints_null ? NULL : DatumGetJsonbP(hints),
									 &device, &place);
			values[0] = id;
			nulls[0] = ' ';
			SessmgrDevicePlaceParams(&device, &place, values, nulls, 1);
			updated += SessmgrRun(&update_plan,
								  "UPDATE sessmgr.sessions"
								  "   SET device = $2, browser = $3, os = $4, device_type = $5,"
								  "       country_code = $6, country = $7, region = $8, city = $9,"
								  "       latitude = $10, longitude = $11,"
								  "       accuracy_radius_km = $12, asn = $13"
								  " WHERE id OPERATOR(pg_catalog.=) $1",
								  1 + DEVICES_NCOLUMNS, update_types, values, nulls,
								  SPI_OK_UPDATE);
			if (i == n - 1)
				last = *DatumGetUUIDP(id);
		}
		SessmgrLeaveOwnerMode(&octx);
		if (n < (uint64) batch_size)
			break;
		if (!atomic)
		{
			SPI_commit();
			if (XactIsoLevel != XACT_READ_COMMITTED)
				(void) set_config_option("transaction_isolation", "read committed",
										 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL,
										 true, 0, false);
		}
	}
	SPI_finish();

	result[0] = Int64GetDatum(updated);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, result, result_nulls)));
}
