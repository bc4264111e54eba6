--
-- User agents: sessmgr.parse_user_agent(user_agent, client_hints)
--
-- The label rules, reduced user agents with and without client hints, the
-- device types, and hostile input: NULL, empty, 10 MB, junk, strings built
-- to make the expressions backtrack, malformed client hints.  Bad input
-- gives "Other" (or ignored hints), never an error, and quickly: the whole
-- file runs under a statement timeout.  uap-core's own suites are checked
-- case by case in test/t/060_user_agents.pl.
--
\set SHOW_CONTEXT never
SET statement_timeout = '20s';

CREATE FUNCTION ua_label(ua text, hints jsonb DEFAULT NULL) RETURNS text
LANGUAGE sql AS $$
    SELECT format('%s | %s | %s', label, device_type, concat_ws(' / ', browser, browser_version, os, os_version, device))
      FROM sessmgr.parse_user_agent(ua, hints)
$$;

-- the examples of the documentation
SELECT ua_label('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36');
SELECT ua_label('Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1');
SELECT ua_label('Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0');
SELECT ua_label('curl/8.4.0');
SELECT * FROM sessmgr.parse_user_agent('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36');

-- real versions are shown; the second part only when it is not 0
SELECT ua_label('Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:109.0) Gecko/20100101 Firefox/115.0');
SELECT ua_label('Mozilla/5.0 (Windows NT 6.3; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36');
SELECT ua_label('Mozilla/5.0 (Windows NT 5.1; rv:52.0) Gecko/20100101 Firefox/52.0');
SELECT ua_label('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/14.1.2 Safari/605.1.15');
SELECT ua_label('Mozilla/5.0 (Linux; Android 13; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36');
SELECT ua_label('Mozilla/5.0 (Linux; Android 10; Pixel 3) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/83.0.4103.101 Mobile Safari/537.36');
SELECT ua_label('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1');
SELECT ua_label('python-requests/2.31.0');

-- device types
SELECT ua_label('Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)');
SELECT ua_label('Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1');
SELECT ua_label('Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36');
SELECT ua_label('Mozilla/5.0 (Android 13; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0');
SELECT ua_label('Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36');
SELECT ua_label('Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36');

--
-- Reduced user agents: Chrome freezes the OS version.  Without client hints
-- the label names the OS without a version; with them, the real one.
--
-- Windows NT 10.0 is Windows 10 or 11
SELECT ua_label('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                '{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "\"15.0.0\"", "sec-ch-ua": "\"Chromium\";v=\"120\", \"Microsoft Edge\";v=\"120\", \"Not=A?Brand\";v=\"99\"", "sec-ch-ua-mobile": "?0"}');
SELECT ua_label('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                '{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "\"13.0.0\"", "sec-ch-ua": "\"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\", \"Google Chrome\";v=\"120\""}');
SELECT ua_label('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                '{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "\"10.0.0\""}');
SELECT ua_label('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                '{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "\"0.3.0\""}');
-- Firefox freezes Windows NT 10.0 too, and sends no hints
SELECT ua_label('Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0');
-- Mac OS X 10_15_7 is every macOS since Catalina
SELECT ua_label('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36');
SELECT ua_label('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                '{"sec-ch-ua-platform": "\"macOS\"", "sec-ch-ua-platform-version": "\"14.2.1\"", "sec-ch-ua": "\"Brave\";v=\"120\", \"Chromium\";v=\"120\", \"Not?A_Brand\";v=\"24\""}');
SELECT ua_label('Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0');
-- Android 10; K is any Android phone
SELECT ua_label('Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36');
SELECT ua_label('Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36',
                '{"sec-ch-ua-platform": "\"Android\"", "sec-ch-ua-platform-version": "\"14.0.0\"", "sec-ch-ua-mobile": "?1", "sec-ch-ua": "\"Chromium\";v=\"120\", \"Microsoft Edge\";v=\"120\", \"Not=A?Brand\";v=\"99\""}');
SELECT ua_label('Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                '{"sec-ch-ua-platform": "\"Android\"", "sec-ch-ua-platform-version": "\"13\"", "sec-ch-ua-mobile": "?0"}');
-- hints for another OS than the user agent's are not believed
SELECT ua_label('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                '{"sec-ch-ua-platform": "\"macOS\"", "sec-ch-ua-platform-version": "\"14.2.1\""}');
-- a brand list changes only a Chromium-based browser
SELECT ua_label('Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0',
                '{"sec-ch-ua": "\"Microsoft Edge\";v=\"120\""}');
-- extra members (request.headers as a whole), spaces and parameters are fine
SELECT ua_label('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36',
                '{"accept": "*/*", "cookie": "a=b", "sec-ch-ua-platform": "  \"Windows\" ", "sec-ch-ua-platform-version": "\"14.0.0\";x=1; v"}');
-- a brand's version that is not a string or not a version is ignored
SELECT ua_label('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36',
                '{"sec-ch-ua": "\"Microsoft Edge\";v=120, \"Chromium\";v=\"119\""}');
SELECT ua_label('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36',
                '{"sec-ch-ua": "\"Microsoft Edge\";v=\"<script>\""}');

--
-- Hostile user agents: "Other", quickly
--
SELECT * FROM sessmgr.parse_user_agent(NULL);
SELECT * FROM sessmgr.parse_user_agent('');
SELECT * FROM sessmgr.parse_user_agent(NULL, NULL);
SELECT ua_label(repeat('Mozilla/5.0 (Windows NT 10.0) Chrome/120.0 ', 250000));  -- 10 MB
SELECT ua_label(repeat('x', 2049));                -- one byte over the limit
SELECT ua_label(repeat('x', 2048)) IS NOT NULL AS parsed_at_the_limit;
SELECT ua_label(E'\x01\x02\x7f\u00ff\ufffd\u2028 junk \\ '' " ; ) ( [ ] { } $1 $9 \\x00');
SELECT ua_label(string_agg(chr(1 + (i * 7919) % 55000), '')) IS NOT NULL AS binary_junk
  FROM generate_series(1, 600) i WHERE chr(1 + (i * 7919) % 55000) <> '';
SELECT ua_label(U&'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) \00E9\00E9 Version/17.1 Mobile/15E148 Safari/604.1');
-- built to make expressions backtrack: bounded, and still an answer
SELECT ua_label(left(repeat('; ', 1100), 2048));
SELECT ua_label(left(repeat('bot', 700), 2048));
SELECT ua_label(left('Mozilla/5.0 (Linux; Android 4.4; ' || repeat('A', 2000) || ' Build/X)', 2048));
SELECT ua_label(left(repeat('Android ', 300), 2048));
SELECT ua_label(left(repeat('; Build', 300), 2048));
SELECT ua_label(left('Mozilla/5.0 (compatible; ' || repeat('abc ', 500) || 'bot/1.0)', 2048));
SELECT ua_label(left(repeat('x', 200) || '-iPhone/' || repeat('1', 1800), 2048));
SELECT ua_label(left(repeat('Spider-a', 300), 2048));
SELECT ua_label(left('/' || repeat('a.', 1000) || ' CFNetwork', 2048));
SELECT ua_label(left(repeat('Opera; ; BuildVersion/Android', 80), 2048));
-- many different ones in one statement (the cache evicts as it goes)
SELECT count(*), count(DISTINCT label) > 1 AS varied
  FROM generate_series(1, 5000) i,
       sessmgr.parse_user_agent('Mozilla/5.0 (Windows NT 6.1) Firefox/' || i || '.0') p;

--
-- Malformed client hints: ignored, never an error
--
CREATE TABLE reduced (ua text);
INSERT INTO reduced VALUES ('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36');
SELECT h AS hints, (SELECT label FROM sessmgr.parse_user_agent(ua, h::jsonb)) AS label
  FROM reduced, (VALUES
    ('[]'), ('"Windows"'), ('null'), ('42'), ('{}'),
    ('{"sec-ch-ua-platform": "Windows", "sec-ch-ua-platform-version": "\"15.0.0\""}'),
    ('{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "15.0.0"}'),
    ('{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": 15}'),
    ('{"sec-ch-ua-platform": ["\"Windows\""], "sec-ch-ua-platform-version": {"v": "\"15.0.0\""}}'),
    ('{"sec-ch-ua-platform": "\"Windows", "sec-ch-ua-platform-version": "\"15.0.0\""}'),
    ('{"sec-ch-ua-platform": "\"Win\\dows\"", "sec-ch-ua-platform-version": "\"15.0.0\""}'),
    ('{"sec-ch-ua-platform": "\"Windows\"\"", "sec-ch-ua-platform-version": "\"15.0.0\""}'),
    ('{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "\"15.0.0.0\""}'),
    ('{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "\"9999999.0\""}'),
    ('{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "\"-15\""}'),
    ('{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "\"15..0\""}'),
    ('{"sec-ch-ua-platform": "\"Windows\"", "sec-ch-ua-platform-version": "\"\""}'),
    ('{"sec-ch-ua-platform": "\"Windows\u0007\"", "sec-ch-ua-platform-version": "\"15.0.0\""}'),
    ('{"sec-ch-ua-platform": "\"Wïndows\"", "sec-ch-ua-platform-version": "\"15.0.0\""}'),
    ('{"sec-ch-ua": "\"Microsoft Edge\";v=\"120\","}'),
    ('{"sec-ch-ua": "(\"Microsoft Edge\" \"Chromium\")"}'),
    ('{"sec-ch-ua": "Microsoft Edge;v=\"120\""}'),
    ('{"sec-ch-ua": "\"Microsoft Edge\";V=\"120\""}'),
    ('{"sec-ch-ua": "\"Not=A?Brand\";v=\"99\", \"Chromium\";v=\"120\""}'),
    ('{"sec-ch-ua-mobile": "?2"}'), ('{"sec-ch-ua-mobile": "1"}'), ('{"sec-ch-ua-mobile": "?1?1"}')
  ) AS v(h);
-- seventeen brands, a 2 kB brand, a 100 kB member, 100 kB of hints
SELECT ua_label(ua, jsonb_build_object('sec-ch-ua',
                (SELECT string_agg(format('"B%s";v="1"', i), ', ') FROM generate_series(1, 17) i)))
  FROM reduced;
SELECT ua_label(ua, jsonb_build_object('sec-ch-ua', '"' || repeat('E', 2000) || '";v="1"')) FROM reduced;
SELECT ua_label(ua, jsonb_build_object('sec-ch-ua-platform', '"Windows"',
                'sec-ch-ua-platform-version', '"' || repeat('1', 100000) || '"')) FROM reduced;
SELECT ua_label(ua, jsonb_build_object('sec-ch-ua-platform', '"Windows"', 'sec-ch-ua-platform-version', '"15.0.0"',
                'padding', repeat('p', 100000))) FROM reduced;

--
-- The rules file: sessmgr.user_agent_regexes (superuser)
--
SHOW sessmgr.user_agent_regexes;
SET sessmgr.user_agent_regexes = '/nonexistent/regexes.yaml';
SELECT * FROM sessmgr.parse_user_agent('curl/8.4.0');
-- not a rules file (PG_VERSION, relative to the data directory)
SET sessmgr.user_agent_regexes = 'PG_VERSION';
SELECT * FROM sessmgr.parse_user_agent('curl/8.4.0');
-- empty: no parsing, NULLs
SET sessmgr.user_agent_regexes = '';
SELECT * FROM sessmgr.parse_user_agent('curl/8.4.0');
RESET sessmgr.user_agent_regexes;
SELECT ua_label('curl/8.4.0');
-- the cache can be turned off; answers stay the same
SET sessmgr.user_agent_cache_size = 0;
SELECT ua_label('curl/8.4.0');
SELECT ua_label('curl/8.4.0');
RESET sessmgr.user_agent_cache_size;

-- application roles need a grant, and cannot change the rules
CREATE ROLE sessmgr_regress_ua;
GRANT USAGE ON SCHEMA sessmgr TO sessmgr_regress_ua;
SET ROLE sessmgr_regress_ua;
SELECT * FROM sessmgr.parse_user_agent('curl/8.4.0');
SET sessmgr.user_agent_regexes = '/tmp/evil.yaml';
RESET ROLE;
GRANT EXECUTE ON FUNCTION sessmgr.parse_user_agent(text, jsonb) TO sessmgr_regress_ua;
SET ROLE sessmgr_regress_ua;
SELECT label FROM sessmgr.parse_user_agent('curl/8.4.0');
RESET ROLE;
REVOKE ALL ON FUNCTION sessmgr.parse_user_agent(text, jsonb) FROM sessmgr_regress_ua;
REVOKE ALL ON SCHEMA sessmgr FROM sessmgr_regress_ua;
DROP ROLE sessmgr_regress_ua;

DROP TABLE reduced;
DROP FUNCTION ua_label(text, jsonb);
