
# test/t/050_docs.pl: the documentation's examples work, so the docs cannot drift
# from the code.
#
# Every fenced code block of README.md and docs/*.md is accounted for:
#
#   ```sql   run in one psql session per page (-v ON_ERROR_STOP=1, database app, as
#            the superuser), in document order, so that \gset variables and SET ROLE
#            carry from one block to the next; each block is a file read with \i,
#            so an error names the block's file and line, reported as the page's line
#   ```sh    run with bash -e -o pipefail, PGHOST and PGPORT naming the page's cluster,
#            in a scratch directory of the page
#   ```text, ```console
#            samples of output: counted, not run
#   anything else, and sql or sh blocks that must not run, need a comment on the
#   line right above the fence:
#     <!-- not run: REASON -->         counted and listed with the reason
#     <!-- run by test/t/FILE.pl: HOW -->
#                                      run by that test, which must exist and read
#                                      this page (the PostgREST configuration file:
#                                      test/t/012_postgrest.pl starts PostgREST with it)
#   An unmarked block that would not run fails the test.
#
# A page can start from sessmgr already installed: a comment
#   <!-- docs test setup: SQL -->
# (one line, before the page's first block) is run in database app before it.
#
# Each page gets a fresh cluster with pg_cron preloaded (cron.database_name =
# postgres, where pg_cron is installed) and an empty database app.  Relative links
# between the pages must point to existing files and headings, and every docs page
# must open with the sentence saying which question it answers.
use strict;
use warnings;

use File::Basename qw(dirname);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $root = dirname(__FILE__) . '/../..';
my @pages = ('README.md', map { s{^\Q$root\E/}{}r } sort glob("$root/docs/*.md"));
ok(@pages > 1, 'docs/ has pages: ' . join(', ', @pages));

my $BLOCK_TIMEOUT = $PostgreSQL::Test::Utils::timeout_default;
my %totals = (sql => 0, sh => 0, delegated => 0, sample => 0, 'not run' => 0);
my @not_run;    # "page:line (lang): reason"

# --- reading a page ---------------------------------------------------------------

# Returns { setup => [SQL...], blocks => [{line, lang, code, mark, why}], headings => {slug => 1},
# links => [[line, target]], text => ... }
sub read_page
{
	my ($page) = @_;
	my @lines = split /\n/, slurp_file("$root/$page"), -1;
	my %p = (setup => [], blocks => [], headings => {}, links => [], lines => \@lines);
	my ($fence, $block);
	my %seen_slug;
	for my $i (0 .. $#lines)
	{
		my ($n, $l) = ($i + 1, $lines[$i]);
		if ($block)
		{
			if ($l =~ /^\s*(\Q$fence\E[`~]*)\s*$/)
			{
				push @{ $p{blocks} }, $block;
				undef $block;
				next;
			}
			$block->{code} .= "$l\n";
			next;
		}
		if (my ($indent, $f, $lang) = $l =~ /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)/)
		{
			$fence = $f;
			my $above = $i > 0 ? $lines[ $i - 1 ] : '';
			my ($mark, $why) = $above =~ /^<!--\s*(not run|run by [^:\s]+)\s*:\s*(.*?)\s*-->\s*$/;
			$block = { line => $n, lang => $lang, code => '', mark => $mark, why => $why,
				indented => length($indent) };
			next;
		}
		if ($l =~ /^<!--\s*docs test setup:\s*(.*?)\s*-->\s*$/)
		{
			push @{ $p{setup} }, { line => $n, sql => $1, after_blocks => scalar @{ $p{blocks} } };
			next;
		}
		if ($l =~ /^(#{1,6})\s+(.*?)\s*#*\s*$/)
		{
			my $slug = slug($2);
			my $k = $seen_slug{$slug}++;
			$p{headings}{ $k ? "$slug-$k" : $slug } = 1;
		}
		# links, outside code spans
		(my $prose = $l) =~ s/`[^`]*`//g;
		push @{ $p{links} }, [ $n, $1 ] while $prose =~ /\]\(([^)\s]+)\)/g;
	}
	$p{unclosed} = $block;
	return \%p;
}

# GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -.
sub slug
{
	my ($h) = @_;
	$h = lc $h;
	$h =~ s/\[([^\]]*)\]\([^)]*\)/$1/g;    # a link's text
	$h =~ s/[^\w\- ]//g;
	$h =~ s/ /-/g;
	return $h;
}

my %page = map { $_ => read_page($_) } @pages;

# --- structure: blocks accounted for, links, opening sentences ----------------------

for my $name (@pages)
{
	my $p = $page{$name};
	ok(!$p->{unclosed}, "$name: every code fence is closed")
	  or diag "$name line $p->{unclosed}{line}: the fence is never closed";
	for my $b (@{ $p->{blocks} })
	{
		my $where = "$name line $b->{line} (```$b->{lang})";
		ok(!$b->{indented}, "$where: the fence starts the line")
		  or diag "$where: an indented fence; start it in column 1 so it is checked like the others";
		if ($b->{mark} && $b->{mark} eq 'not run')
		{
			ok($b->{why} ne '', "$where: marked not run, with a reason");
			$b->{kind} = 'not run';
			push @not_run, "$name:$b->{line} ($b->{lang}): $b->{why}";
		}
		elsif ($b->{mark})
		{
			my ($test) = $b->{mark} =~ /^run by (.*)$/;
			my $delegate = -f "$root/$test" ? slurp_file("$root/$test") : '';
			ok($delegate =~ /\Q$name\E/,
				"$where: run by $test, which reads $name ($b->{why})");
			$b->{kind} = 'delegated';
		}
		elsif ($b->{lang} eq 'sql' || $b->{lang} eq 'sh' || $b->{lang} eq 'bash')
		{
			$b->{kind} = $b->{lang} eq 'sql' ? 'sql' : 'sh';
		}
		elsif ($b->{lang} eq 'text' || $b->{lang} eq 'console')
		{
			$b->{kind} = 'sample';
		}
		else
		{
			fail("$where: not run and not marked");
			diag "$where: a block that is neither ```sql nor ```sh is not run: mark it ```text "
			  . "(an output sample) or put <!-- not run: REASON --> on the line above it";
			$b->{kind} = 'unmarked';
		}
		$totals{ $b->{kind} }++ if exists $totals{ $b->{kind} };
	}
	for my $s (@{ $p->{setup} })
	{
		is($s->{after_blocks}, 0, "$name line $s->{line}: the setup comes before the first block");
	}
	for my $link (@{ $p->{links} })
	{
		my ($line, $target) = @$link;
		next if $target =~ m{^[a-z]+:}i;    # http:, https:, mailto:
		my ($file, $anchor) = $target =~ /^([^#]*)(?:#(.*))?$/;
		my $path = $file eq '' ? $name : (dirname($name) eq '.' ? $file : dirname($name) . "/$file");
		1 while $path =~ s{(^|/)(?!\.\./)[^/]+/\.\./}{$1};    # docs/../README.md -> README.md
		$path =~ s{/$}{};
		ok(-e "$root/$path", "$name line $line: the link to $target finds $path") or next;
		next unless defined $anchor;
		ok($page{$path} && $page{$path}{headings}{$anchor},
			"$name line $line: the link to $target finds the heading #$anchor")
		  or diag "headings of $path: " . join(' ', sort keys %{ $page{$path}{headings} // {} });
	}
	next if $name eq 'README.md';
	my ($opening) = join("\n", @{ $p->{lines} }) =~ /\A# [^\n]+\n\n([^\n]+)/;
	like($opening // '', qr/^This page answers: /, "$name opens with the question it answers");
}

# --- running the blocks ----------------------------------------------------------

# A fresh cluster for a page: pg_cron preloaded and installed in postgres, an empty
# database app.
sub page_cluster
{
	my ($name) = @_;
	(my $tag = $name) =~ s/\W+/_/g;
	my $node = PostgreSQL::Test::Cluster->new("docs_$tag");
	$node->init;
	$node->append_conf(
		'postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.host = '@{[ $node->host ]}'
});
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION pg_cron');
	$node->safe_psql('postgres', 'CREATE DATABASE app');
	return $node;
}

# The error lines of a psql run, with "psql:FILE:N:" turned into the page's line.
sub explain_psql_error
{
	my ($err, $files) = @_;
	my @out;
	for my $l (split /\n/, $err)
	{
		if ($l =~ /^psql:(.*?):(\d+): (.*)$/ && $files->{$1})
		{
			my ($page, $first) = @{ $files->{$1} };
			push @out, sprintf('%s line %d: %s', $page, $first + $2, $3);
		}
		else
		{
			push @out, $l;
		}
	}
	return join("\n", @out);
}

my $scratch = PostgreSQL::Test::Utils::tempdir();

for my $name (@pages)
{
	my $p = $page{$name};
	my @run = grep { $_->{kind} eq 'sql' || $_->{kind} eq 'sh' } @{ $p->{blocks} };
	next unless @run;
	my $started = time;
	my $node = page_cluster($name);
	(my $tag = $name) =~ s/\W+/_/g;
	my $workdir = "$scratch/$tag";
	mkdir $workdir or die "mkdir $workdir: $!";

	for my $s (@{ $p->{setup} })
	{
		$node->safe_psql('app', $s->{sql});
	}

	# the page's psql session
	my ($in, $out, $err) = ('', '', '');
	my $timer = IPC::Run::timeout($BLOCK_TIMEOUT);
	my $psql = IPC::Run::start(
		[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-h', $node->host, '-p', $node->port, '-d', 'app' ],
		'<', \$in, '>', \$out, '2>', \$err, $timer);
	my %files;       # block file => [page, line of its fence]
	my $broken;      # the psql session ended
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	delete local $ENV{PGDATABASE};
	delete local $ENV{PGUSER};

	for my $i (0 .. $#run)
	{
		my $b = $run[$i];
		my $where = "$name line $b->{line} (```$b->{lang})";
		my $file = "$workdir/$tag-line$b->{line}.$b->{kind}";
		open my $fh, '>', $file or die "$file: $!";
		print $fh $b->{code};
		close $fh;
		if ($b->{kind} eq 'sh')
		{
			my ($sh_out, $sh_err) = ('', '');
			my $ok = eval {
				IPC::Run::run([ 'bash', '-e', '-o', 'pipefail', $file ],
					'<', \undef, '>', \$sh_out, '2>', \$sh_err,
					init => sub { chdir $workdir or die "chdir $workdir: $!" },
					IPC::Run::timeout($BLOCK_TIMEOUT));
			};
			my $why = $@ ? "gave up after $BLOCK_TIMEOUT s: $@" : "exit status " . ($? >> 8);
			note "--- $where\n$sh_out$sh_err";
			ok($ok, "$where runs") or diag "$where failed ($why):\n$sh_err$sh_out";
			next;
		}
		if ($broken)
		{
			fail("$where runs");
			diag "$where: not run, an earlier block of $name failed";
			next;
		}
		$files{$file} = [ $name, $b->{line} ];
		my $done = "docs-test: done with block $i";
		my $from = length $out;
		$in .= "\\i $file\n\\echo '$done'\n";
		$timer->start($BLOCK_TIMEOUT);
		my $ok = eval {
			$psql->pump while $psql->pumpable && index($out, $done, $from) < 0;
			1;
		};
		my $finished = index($out, $done, $from) >= 0;
		note "--- $where\n" . substr($out, $from) . $err;
		if ($finished)
		{
			pass("$where runs");
			$err = '';
			next;
		}
		fail("$where runs");
		diag "$where failed"
		  . ($ok ? '' : " (gave up after $BLOCK_TIMEOUT s)") . ":\n"
		  . explain_psql_error($err, \%files);
		$broken = 1;
	}
	$in .= "\\q\n";
	if (eval { $psql->finish; 1 })
	{
		is($psql->result(0), 0, "$name: its psql session ends cleanly") unless $broken;
	}
	else
	{
		$psql->kill_kill;
		fail("$name: its psql session ends") or diag "psql did not end: $@";
	}
	$node->stop('fast');
	note sprintf('%s: %d blocks run in %.1f s', $name, scalar @run, time - $started);
}

note "blocks run: $totals{sql} sql, $totals{sh} sh; run by another test: $totals{delegated}; "
  . "samples: $totals{sample}; not run: $totals{'not run'}";
note "not run: $_" for @not_run;

done_testing();
