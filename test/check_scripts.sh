#!/usr/bin/env bash
# test/check_scripts.sh: security lint of the extension scripts sessmgr--*.sql
# (PostgreSQL docs, "Security Considerations for Extension Scripts").
#
#   bash test/check_scripts.sh [script.sql...]     default: every sessmgr--*.sql
#
# Fails on:
#   - CREATE OR REPLACE or IF NOT EXISTS anywhere (an object that already exists
#     belongs to whoever made it; the script must fail instead of adopting it),
#     except CREATE OR REPLACE FUNCTION or VIEW in sessmgr's own schemas in an
#     update script (PostgreSQL refuses to replace an object that is not
#     already a member of the extension);
#   - a SECURITY DEFINER function without SET search_path = pg_catalog, pg_temp;
#   - an operator outside a function body that is not written
#     OPERATOR(pg_catalog.op): the statements of the script itself run with the
#     extension's schema in search_path;
#   - a script without the \echo ... \quit guard against running it in psql.
# Comments, string literals and dollar-quoted bodies are taken apart first, so
# text in them does not count (except that a SECURITY DEFINER body is what
# needs the SET clause). The installed catalogs are checked by
# test/pgtap/security.sql. Prints one line per finding and "N findings".
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ $# -eq 0 ]]; then
	mapfile -t scripts < <(compgen -G 'sessmgr--*.sql' | sort)
else
	scripts=("$@")
fi
if [[ ${#scripts[@]} -eq 0 ]]; then
	echo "no sessmgr--*.sql scripts found" >&2
	exit 1
fi

exec perl -e '
use strict;
use warnings;

my $findings = 0;

sub finding
{
	my ($file, $line, $msg) = @_;
	print "$file:$line: $msg\n";
	$findings++;
}

for my $file (@ARGV)
{
	open(my $fh, "<", $file) or die "$file: $!";
	my $text = do { local $/; <$fh> };
	close($fh);

	finding($file, 1, "no \\echo ... \\quit guard against running the script in psql")
	  unless $text =~ /^\\echo Use "(?:CREATE|ALTER) EXTENSION [^"]*" to load this file\. \\quit$/m;

	# Split into statements; keep for each its text with comments, literals
	# and bodies blanked out ("code"), its bodies, and its first line.
	my @stmts;
	my ($code, @bodies) = ("", ());
	my $start = 1;
	my $line = 1;
	my $i = 0;
	my $n = length($text);
	while ($i < $n)
	{
		my $rest = substr($text, $i);
		my $tok;
		if ($rest =~ /^(--[^\n]*)/ || $rest =~ m{^(/\*.*?\*/)}s)
		{
			$tok = $1;
			$code .= " ";
		}
		elsif ($rest =~ /^((?:[EeUu]&?)?\x27(?:[^\x27]|\x27\x27)*\x27)/)
		{
			$tok = $1;
			$code .= " \x27\x27 ";
		}
		elsif ($rest =~ /^(\$([A-Za-z_]\w*)?\$)/)
		{
			my $q = $1;
			my $end = index($text, $q, $i + length($q));
			die "$file:$line: unterminated $q\n" if $end < 0;
			$tok = substr($text, $i, $end + length($q) - $i);
			push @bodies, substr($tok, length($q), length($tok) - 2 * length($q));
			$code .= " \$body\$ ";
		}
		elsif ($rest =~ /^;/)
		{
			$tok = ";";
			push @stmts, { code => $code, bodies => [@bodies], line => $start };
			($code, @bodies) = ("", ());
		}
		else
		{
			$rest =~ /^([^-\/\x27\$;]+|.)/s;
			$tok = $1;
			$start = $line + ($1 =~ tr/\n//) if $code =~ /^\s*$/ && $tok =~ /^(\s*)\S/;
			$code .= $tok;
		}
		$line += ($tok =~ tr/\n//);
		$i += length($tok);
	}

	for my $s (@stmts)
	{
		my $c = $s->{code};
		next if $c =~ /^\s*$/;
		my $at = $s->{line};

		# An update script may replace its own functions: PostgreSQL refuses
		# CREATE OR REPLACE of an object that is not already a member of the
		# extension being updated, so nothing that belongs to another is adopted.
		finding($file, $at, "CREATE OR REPLACE: the script must not adopt an existing object")
		  if $c =~ /\bCREATE\s+OR\s+REPLACE\b/i
		  && !($file =~ /^sessmgr--[^-]+--[^-]+\.sql$/
			&& $c =~ /^\s*CREATE\s+OR\s+REPLACE\s+(?:FUNCTION\s+sessmgr(?:_api)?\.\w+\s*\(|VIEW\s+sessmgr\.\w+\s)/i);
		finding($file, $at, "IF NOT EXISTS: the script must not adopt an existing object")
		  if $c =~ /\bIF\s+NOT\s+EXISTS\b/i;

		if ($c =~ /\bSECURITY\s+DEFINER\b/i
			&& $c !~ /\bSET\s+search_path\s*(?:=|\bTO\b)\s*pg_catalog\s*,\s*pg_temp\s*(?:$|\bAS\b|\bLANGUAGE\b|\bSET\b|\bRETURNS\b|\bSECURITY\b|\bSTABLE\b|\bVOLATILE\b|\bIMMUTABLE\b|\$body\$)/i)
		{
			my ($name) = $c =~ /\bFUNCTION\s+([\w.]+)/i;
			finding($file, $at, "SECURITY DEFINER function " . ($name // "?")
				  . " without SET search_path = pg_catalog, pg_temp");
		}

		# operators outside bodies: drop the qualified ones, casts, named
		# arguments, SET clauses, storage parameters and the identifier/number characters
		my $ops = $c;
		$ops =~ s/\bOPERATOR\s*\(\s*pg_catalog\s*\.\s*[^)\s]+\s*\)/ /gi;
		$ops =~ s/::/ /g;
		$ops =~ s/=>/ /g;
		$ops =~ s/\bSET\s+[\w.]+\s*(?:=|\bTO\b)/ /gi;
		$ops =~ s/\bSET\s+\w+\s*=/ /gi;
		$ops =~ s/\b(?:fillfactor|autovacuum_\w+|toast_tuple_target|parallel_workers)\s*=/ /gi;	# storage parameters
		$ops =~ s/\$body\$/ /g;
		$ops =~ s/"(?:[^"]|"")*"/ /g;
		$ops =~ s/-(?=\d)/ /g;	# a negative number, not an operator
		while ($ops =~ /([-+*\/<>=~!@#%^&|`?]+)/g)
		{
			my $op = $1;
			next if $op eq "*";	# SELECT *, count(*)
			finding($file, $at, "operator \"$op\" not written OPERATOR(pg_catalog.$op)");
		}
	}
}

print "$findings finding" . ($findings == 1 ? "" : "s") . " in " . scalar(@ARGV) . " script"
  . (@ARGV == 1 ? "" : "s") . "\n";
exit($findings ? 1 : 0);
' "${scripts[@]}"
