/* sessmgr--0.1.0--0.2.0.sql: update a 0.1.0 install to 0.2.0 (ALTER EXTENSION sessmgr UPDATE) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION sessmgr UPDATE TO '0.2.0'" to load this file. \quit
