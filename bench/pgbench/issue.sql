-- sessmgr.issue() for a random one of the loaded users (cap trigger, audit event, access token)
\set u random(0, :nusers - 1)
SELECT session_id FROM sessmgr.issue('u' || :u, 'laptop', 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', '203.0.113.10', 'Berlin', false, '{"app": "web"}');
