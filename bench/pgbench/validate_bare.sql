-- the floor: the session row of a random token of the sample, by primary key
\set n random(1, :sample)
SELECT s.id, s.user_id, s.expires_at FROM sessmgr.sessions s WHERE s.id = (SELECT id FROM bench.tokens WHERE n = :n);
