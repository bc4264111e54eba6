-- every client issues for the same user
SELECT session_id FROM sessmgr.issue('storm-user', 'laptop');
