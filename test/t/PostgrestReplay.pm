
# test/t/PostgrestReplay.pm: replays, against a real PostgreSQL, exactly the SQL
# that PostgREST (v12 to v16) sends for an HTTP request, as described in
# ../shared/postgrest-contract.md.  PostgREST itself is not packaged for Debian 12.
#
#   my $api = PostgrestReplay->new(
#       admin_dbh   => $superuser_dbh,       # reads the schema cache and the JWKS once
#       dsn         => "dbi:Pg:host=...;port=...;dbname=...",
#       user        => 'authenticator',      # LOGIN NOINHERIT, granted the roles below
#       schemas     => ['api', 'sessmgr_api'],   # db-schemas (first = default profile)
#       anon_role   => 'anon',               # db-anon-role
#       pre_request => 'sessmgr_api.pre_request');   # db-pre-request
#   my $res = $api->request('POST', '/rpc/login', {email => ..., password => ...},
#                           client => $device, headers => {...});
#   # $res->{status}, $res->{body} (decoded JSON or undef), $res->{headers} (lower-case
#   # names, array of values), $res->{sql} (statements run for this request)
#
# A "client" is a hash standing for one browser or app: {headers => {...}} sent with
# every request, jar => {name => value} (cookies from Set-Cookie, sent back like a
# browser), and token => the access token to send as "Authorization: Bearer".
#
# Per request: HTTP-level checks first (profile, function lookup, JWT with Crypt::JWT,
# never with sessmgr); on failure no SQL runs.  Then, on one reused connection as the
# authenticator: BEGIN ISOLATION LEVEL ... READ ONLY|READ WRITE, one statement of
# set_config calls, the pre-request function, the call in PostgREST's form reading
# back response.headers and response.status, COMMIT (ROLLBACK on error or with
# "Prefer: tx=rollback").
package PostgrestReplay;

use strict;
use warnings;

use Carp;
use Crypt::JWT qw(decode_jwt);
use DBI;
use JSON::PP;

my $JSON = JSON::PP->new->canonical->allow_nonref;

# PostgREST's JWT clock-skew allowance (seconds).
our $LEEWAY = 30;

sub new
{
	my ($class, %args) = @_;
	my $self = bless {
		schemas     => $args{schemas} // ['api'],
		anon_role   => $args{anon_role} // 'anon',
		pre_request => $args{pre_request},
		jwt_aud     => $args{jwt_aud},
		dsn         => $args{dsn},
		user        => $args{user},
		statements  => 0,
		log         => [],
	}, $class;

	# jwt-secret: the JWKS document, read once by an administrator
	my ($jwks) = $args{admin_dbh}->selectrow_array('SELECT sessmgr.jwks()::text');
	$self->{jwks} = $JSON->decode($jwks);
	$self->load_schema_cache($args{admin_dbh});
	$self->connect;
	return $self;
}

# (Re)connect as the authenticator, like PostgREST's pool after a restart.
sub connect
{
	my ($self) = @_;
	$self->{dbh}->disconnect if $self->{dbh};
	$self->{dbh} = DBI->connect($self->{dsn}, $self->{user}, '',
		{ AutoCommit => 1, RaiseError => 0, PrintError => 0, PrintWarn => 0,
		  pg_placeholder_dollaronly => 1, pg_server_prepare => 1 })
	  or croak "cannot connect as $self->{user}: $DBI::errstr";
	return $self->{dbh};
}

sub dbh { $_[0]->{dbh} }
sub jwks { $_[0]->{jwks} }

# How many SQL statements the authenticator connection has run so far.
sub statements { $_[0]->{statements} }

# PostgREST's schema cache: the functions of the exposed schemas with their
# input parameters, volatility, return shape and hoisted isolation level.
sub load_schema_cache
{
	my ($self, $admin) = @_;
	my $rows = $admin->selectall_arrayref(<<'SQL', { Slice => {} }, $self->{schemas});
SELECT n.nspname AS schema, p.proname AS name, p.provolatile AS volatility,
       p.proretset AS retset, p.prorettype = 'pg_catalog.void'::regtype AS void,
       t.typtype = 'c' OR p.proargmodes && ARRAY['o','t','b']::"char"[] AS composite,
       p.pronargdefaults AS ndefaults,
       (SELECT coalesce(json_agg(json_build_array(a.name, format_type(a.type, NULL))
                                 ORDER BY a.ord), '[]')
          FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]),
                      coalesce(p.proargmodes, array_fill('i'::"char", ARRAY[p.pronargs])),
                      p.proargnames) WITH ORDINALITY AS a(type, mode, name, ord)
         WHERE a.mode IN ('i', 'b', 'v'))::text AS args,
       (SELECT substr(c, length('default_transaction_isolation=') + 1)
          FROM unnest(p.proconfig) c
         WHERE c LIKE 'default_transaction_isolation=%') AS isolation
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_type t ON t.oid = p.prorettype
 WHERE n.nspname = ANY (?) AND p.prokind = 'f'
   AND p.prorettype <> 'pg_catalog.trigger'::regtype
SQL
	my %cache;
	for my $r (@$rows)
	{
		my $args = $JSON->decode($r->{args});
		next if grep { !defined $_->[0] || $_->[0] eq '' } @$args;   # not exposed
		$r->{args} = $args;
		push @{ $cache{"$r->{schema}.$r->{name}"} }, $r;
	}
	$self->{procs} = \%cache;

	# the JWT roles' ALTER ROLE ... SET values, applied by PostgREST per request
	my $settings = $admin->selectall_arrayref(<<'SQL');
SELECT r.rolname, s.setting
  FROM pg_db_role_setting d
  JOIN pg_roles r ON r.oid = d.setrole
  CROSS JOIN LATERAL unnest(d.setconfig) AS s(setting)
 WHERE d.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
SQL
	my %role_settings;
	push @{ $role_settings{ $_->[0] } }, [ split /=/, $_->[1], 2 ] for @$settings;
	$self->{role_settings} = \%role_settings;
}

sub quote_ident
{
	my ($s) = @_;
	$s =~ s/"/""/g;
	return qq("$s");
}

sub error_response
{
	my ($status, $code, $message, %extra) = @_;
	my $headers = { 'content-type' => ['application/json; charset=utf-8'] };
	$headers->{'www-authenticate'} = [ $extra{www_authenticate} ] if $extra{www_authenticate};
	return {
		status  => $status,
		body    => { code => $code, message => $message, details => $extra{details},
					 hint => $extra{hint} },
		headers => $headers,
		sql     => [],
	};
}

# The HTTP-level JWT check of PostgREST with a JWKS secret, done by Crypt::JWT:
# returns the claims, or an error response (no SQL runs).
sub check_jwt
{
	my ($self, $token) = @_;
	my $invalid = sub {
		my ($code, $msg) = @_;
		return (undef, error_response(401, $code, $msg,
			www_authenticate => qq(Bearer error="invalid_token", error_description="$msg")));
	};

	# signature: the key picked by kid from the JWKS; HS* only (oct keys), never none
	my ($header, $claims) = eval {
		decode_jwt(token => $token, kid_keys => $self->{jwks}, decode_header => 1,
				   accepted_alg => [qw(HS256 HS384 HS512)],
				   verify_exp => 0, verify_nbf => 0);
	};
	return $invalid->('PGRST301', 'JWSError JWSInvalidSignature') if !$header;
	# the key's own algorithm, not the header's, decides (a JWK's "alg" binds the key)
	my ($key) = grep { $_->{kid} eq $header->{kid} } @{ $self->{jwks}{keys} };
	return $invalid->('PGRST301', 'JWSError JWSInvalidSignature')
	  if !$key || ($key->{alg} && $key->{alg} ne $header->{alg});
	return $invalid->('PGRST301', 'JWT claims are not a JSON object') if ref $claims ne 'HASH';

	# claims, with PostgREST's 30 s leeway: exp, nbf, iat (when present), aud (when configured)
	my $ok = eval {
		decode_jwt(token => $token, kid_keys => $self->{jwks},
				   accepted_alg => [qw(HS256 HS384 HS512)],
				   leeway => $LEEWAY, verify_exp => undef, verify_nbf => undef,
				   verify_iat => undef,
				   defined $self->{jwt_aud} ? (verify_aud => sub {
					   my $aud = shift;
					   return grep { $_ eq $self->{jwt_aud} } (ref $aud ? @$aud : $aud);
				   }) : ());
		1;
	};
	if (!$ok)
	{
		my $msg = $@ =~ /exp claim/ ? 'JWT expired' : 'JWT claims validation failed';
		return $invalid->('PGRST303', $msg);
	}
	return ($claims, undef);
}

# Parse DBD::Pg's error text (libpq's default verbosity) into its fields.
sub parse_pg_error
{
	my ($dbh) = @_;
	my $text = $dbh->errstr // '';
	my %f = (code => $dbh->state);
	my $field = 'message';
	for my $line (split /\n/, $text)
	{
		if ($line =~ /^(?:ERROR|FATAL|PANIC):\s+(.*)$/) { $field = 'message'; $f{message} = $1; }
		elsif ($line =~ /^DETAIL:\s+(.*)$/) { $field = 'details'; $f{details} = $1; }
		elsif ($line =~ /^HINT:\s+(.*)$/) { $field = 'hint'; $f{hint} = $1; }
		elsif ($line =~ /^(?:CONTEXT|QUERY|LINE \d+|STATEMENT):/) { $field = undef; }
		elsif (defined $field && defined $f{$field}) { $f{$field} .= "\n$line"; }
	}
	return \%f;
}

# SQLSTATE -> HTTP status, as PostgREST's Error.hs.
sub pg_error_status
{
	my ($code, $is_anon) = @_;
	return $1 + 0 if $code =~ /^PT(\d\d\d)$/;
	return 400 if $code eq 'P0001';
	return 500 if $code =~ /^P0/;
	return $is_anon ? 401 : 403 if $code eq '42501';
	return 404 if $code eq '42883' || $code eq '42P01';
	return 500 if $code eq '42P17';
	return 409 if $code eq '23503' || $code eq '23505';
	return 405 if $code eq '25006';
	my %by_class = ('08' => 503, '09' => 500, '0L' => 403, '0P' => 403, '25' => 500,
		'28' => 403, '2D' => 500, '38' => 500, '39' => 500, '3B' => 500, '40' => 500,
		'53' => 503, '54' => 500, '55' => 500, '57' => 500, '58' => 500, 'F0' => 500,
		'HV' => 500, 'XX' => 500);
	return $by_class{ substr($code, 0, 2) } // 400;
}

sub add_header
{
	my ($headers, $name, $value) = @_;
	push @{ $headers->{ lc $name } }, $value;
}

# The cookie jar update a browser makes from Set-Cookie headers.
sub store_cookies
{
	my ($jar, $headers) = @_;
	return if !$jar;
	for my $sc (@{ $headers->{'set-cookie'} // [] })
	{
		my ($pair, @attrs) = split /;\s*/, $sc;
		my ($name, $value) = split /=/, $pair, 2;
		if (grep { /^max-age=(-?\d+)$/i && $1 <= 0 } @attrs)
		{
			delete $jar->{$name};
		}
		else
		{
			$jar->{$name} = $value;
		}
	}
}

# Run one statement on the authenticator connection, counting it.
sub run
{
	my ($self, $sql, @bind) = @_;
	$self->{statements}++;
	push @{ $self->{current_sql} }, $sql;
	my $sth = $self->{dbh}->prepare($sql);
	return undef if !$sth || !$sth->execute(@bind);
	return $sth;
}

# One HTTP request.  $body is a hash (JSON body for POST, query parameters for GET).
# Options: client => {...}, headers => {...} (this request only), prefer => '...'.
sub request
{
	my ($self, $method, $path, $body, %opt) = @_;
	my $client = $opt{client} // {};
	my %headers = map { lc($_) => $client->{headers}{$_} } keys %{ $client->{headers} // {} };
	$headers{ lc $_ } = $opt{headers}{$_} for keys %{ $opt{headers} // {} };
	$headers{authorization} = "Bearer $client->{token}"
	  if defined $client->{token} && !exists $headers{authorization};
	delete $headers{authorization} if $opt{anonymous};
	$headers{prefer} = $opt{prefer} if defined $opt{prefer};
	$headers{'content-type'} //= 'application/json' if $method ne 'GET';
	my $read_only_method = $method eq 'GET' || $method eq 'HEAD';
	$body //= {};
	$self->{current_sql} = [];
	$self->{current_settings} = undef;

	# schema from the profile headers (first of db-schemas by default)
	my $profile = $headers{ $read_only_method ? 'accept-profile' : 'content-profile' }
	  // $self->{schemas}[0];
	return error_response(406, 'PGRST106', 'Invalid schema: ' . $profile)
	  if !grep { $_ eq $profile } @{ $self->{schemas} };

	# the function, matched by name and the argument names present
	my ($fname) = $path =~ m{^/rpc/([^/?]+)$} or croak "not an RPC path: $path";
	my @keys = sort keys %$body;
	my ($proc) = grep {
		my $p = $_;
		my %names = map { $_->[0] => 1 } @{ $p->{args} };
		my @required = @{ $p->{args} }[ 0 .. $#{ $p->{args} } - $p->{ndefaults} ];
		!(grep { !$names{$_} } @keys) && !(grep { !exists $body->{ $_->[0] } } @required);
	} @{ $self->{procs}{"$profile.$fname"} // [] };
	return error_response(404, 'PGRST202',
		"Could not find the function $profile.$fname(" . join(', ', @keys) . ') in the schema cache')
	  if !$proc;

	# HTTP-level authentication
	my $claims;
	if (defined $headers{authorization})
	{
		my ($token) = $headers{authorization} =~ /^Bearer\s+(\S+)$/i;
		return error_response(401, 'PGRST301', 'Expected Bearer token',
			www_authenticate => 'Bearer') if !defined $token;
		my $err;
		($claims, $err) = $self->check_jwt($token);
		return $err if $err;
	}
	my $role = (defined $claims && defined $claims->{role}) ? $claims->{role} : $self->{anon_role};
	$claims //= {};
	$claims = { %$claims, role => $role };
	my $is_anon = $role eq $self->{anon_role};

	# cookies are passed separately, never in request.headers
	my %cookies;
	my $cookie_header = delete $headers{cookie};
	my @cookie_pairs = map { [ split /=/, $_, 2 ] } split /;\s*/, $cookie_header // '';
	$cookies{ $_->[0] } = $_->[1] for @cookie_pairs;
	$cookies{$_} = $client->{jar}{$_} for keys %{ $client->{jar} // {} };

	my $tx_rollback = ($headers{prefer} // '') =~ /\btx=rollback\b/;
	my $read_only = $read_only_method || $proc->{volatility} ne 'v';
	my $isolation = uc($proc->{isolation} // '');
	if (!$isolation)
	{
		my ($s) = grep { $_->[0] eq 'default_transaction_isolation' }
		  @{ $self->{role_settings}{$role} // [] };
		$isolation = uc($s->[1]) if $s;
	}
	$isolation ||= 'READ COMMITTED';

	# 1. BEGIN
	my $fail = sub {
		my $err = parse_pg_error($self->{dbh});
		$self->{dbh}->do('ROLLBACK');
		$self->{statements}++;
		my $res = $self->error_from_pg($err, $is_anon);
		store_cookies($client->{jar}, $res->{headers});
		return $res;
	};
	$self->run("BEGIN ISOLATION LEVEL $isolation " . ($read_only ? 'READ ONLY' : 'READ WRITE'))
	  or return $fail->();

	# 2. the transaction-local settings, in PostgREST's order
	my @set = (
		[ 'search_path', join(', ', map { quote_ident($_) } $profile, 'public') ],
		(map { [ $_->[0], $_->[1] ] } @{ $self->{role_settings}{$role} // [] }),
		[ 'role', $role ],
		[ 'request.jwt.claims', $JSON->encode($claims) ],
		[ 'request.method', $method ],
		[ 'request.path', $path ],
		[ 'request.headers', $JSON->encode(\%headers) ],
		[ 'request.cookies', $JSON->encode(\%cookies) ],
	);
	my $n = 0;
	my $set_sql = 'SELECT ' . join(",\n       ",
		map { $n++; (my $name = $_->[0]) =~ s/'/''/g; "set_config('$name', \$$n, true)" } @set);
	$self->{current_settings} = { map { @$_ } @set };
	$self->run($set_sql, map { $_->[1] } @set) or return $fail->();

	# 3. the pre-request function
	if ($self->{pre_request})
	{
		my ($ps, $pf) = split /\./, $self->{pre_request};
		$self->run('SELECT ' . quote_ident($ps) . '.' . quote_ident($pf) . '()')
		  or return $fail->();
	}

	# 4. the call
	my %type = map { $_->[0] => $_->[1] } @{ $proc->{args} };
	my $qfn = quote_ident($proc->{schema}) . '.' . quote_ident($proc->{name});
	my $call_args = join(', ', map { quote_ident($_) . ' := pgrst_body.' . quote_ident($_) } @keys);
	my $body_lateral = @keys
	  ? "  LATERAL (SELECT " . join(', ', map { quote_ident($_) } @keys)
		. " FROM json_to_record(pgrst_payload.json_data) AS _("
		. join(', ', map { quote_ident($_) . " $type{$_}" } @keys) . ") LIMIT 1) pgrst_body,\n"
	  : '';
	my $sql;
	if ($proc->{retset} || $proc->{composite})
	{
		$sql = "WITH pgrst_source AS (\n"
		  . "  SELECT \"pgrst_call\".*\n"
		  . "  FROM (SELECT \$1::json AS json_data) pgrst_payload,\n"
		  . $body_lateral
		  . "  LATERAL $qfn($call_args) pgrst_call)\n"
		  . "SELECT " . ($proc->{retset} ? "coalesce(json_agg(t), '[]')" : "coalesce(json_agg(t)->0, 'null')")
		  . " AS body,\n";
	}
	else
	{
		$sql = "WITH pgrst_source AS (\n"
		  . "  SELECT pgrst_call.pgrst_scalar\n"
		  . "  FROM (SELECT \$1::json AS json_data) pgrst_payload,\n"
		  . $body_lateral
		  . "  LATERAL (SELECT $qfn($call_args) pgrst_scalar) pgrst_call)\n"
		  . "SELECT coalesce(json_agg(t.pgrst_scalar)->0, 'null') AS body,\n";
	}
	$sql .= "       nullif(current_setting('response.headers', true), '') AS response_headers,\n"
	  . "       nullif(current_setting('response.status', true), '') AS response_status\n"
	  . "FROM pgrst_source t";
	my $sth = $self->run($sql, $JSON->encode($body)) or return $fail->();
	my ($res_body, $res_headers, $res_status) = $sth->fetchrow_array;
	$sth->finish;

	# 5. COMMIT, or ROLLBACK for Prefer: tx=rollback
	$self->run($tx_rollback ? 'ROLLBACK' : 'COMMIT') or return $fail->();

	my %out_headers;
	add_header(\%out_headers, 'Preference-Applied', 'tx=rollback') if $tx_rollback;
	if (defined $res_headers)
	{
		my $list = eval { $JSON->decode($res_headers) };
		return error_response(500, 'PGRST111', 'response.headers guc must be a JSON array composed of objects with a single key and a string value')
		  if ref $list ne 'ARRAY' || grep { ref $_ ne 'HASH' || keys %$_ != 1 } @$list;
		add_header(\%out_headers, %$_) for @$list;
	}
	my $status;
	if (defined $res_status)
	{
		return error_response(500, 'PGRST112', 'response.status guc must be a valid status code')
		  if $res_status !~ /^\d{3}$/;
		$status = $res_status + 0;
	}
	my $decoded = $JSON->decode($res_body);
	$status //= ($proc->{void} ? 204 : 200);
	$decoded = undef if $proc->{void};
	# a 401 set through response.status gets no WWW-Authenticate of PostgREST's own
	# (the real 12.0.2 adds one to error responses only)
	store_cookies($client->{jar}, \%out_headers);
	return { status => $status, body => $decoded, headers => \%out_headers,
			 sql => $self->{current_sql}, settings => $self->{current_settings} };
}

# The HTTP answer to an error raised in the transaction.
sub error_from_pg
{
	my ($self, $err, $is_anon) = @_;
	my ($status, $body, %headers);
	if (($err->{code} // '') eq 'PGRST')
	{
		$body = eval { $JSON->decode($err->{message}) };
		my $detail = eval { $JSON->decode($err->{details} // '') };
		return error_response(500, 'PGRST121', 'Could not parse JSON in the RAISE SQLSTATE \'PGRST\' error')
		  if ref $body ne 'HASH' || ref $detail ne 'HASH';
		$status = $detail->{status};
		add_header(\%headers, $_, $detail->{headers}{$_}) for keys %{ $detail->{headers} // {} };
	}
	else
	{
		$status = pg_error_status($err->{code}, $is_anon);
		$body = { code => $err->{code}, message => $err->{message},
				  details => $err->{details}, hint => $err->{hint} };
	}
	add_header(\%headers, 'WWW-Authenticate', 'Bearer')
	  if $status == 401 && !$headers{'www-authenticate'};
	return { status => $status, body => $body, headers => \%headers,
			 sql => $self->{current_sql}, settings => $self->{current_settings} };
}

1;
