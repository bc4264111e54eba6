-- sessmgr.validate() of a random token of the sample
\set n random(1, :sample)
SELECT * FROM sessmgr.validate((SELECT token FROM bench.tokens WHERE n = :n));
