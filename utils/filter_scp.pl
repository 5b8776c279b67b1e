#!/usr/bin/env perl
# Keep the lines of a table whose key is (with --exclude: is not) in an id list, as Kaldi's
# utils/filter_scp.pl does:
#   utils/filter_scp.pl [--exclude] [-f N] id_list [in.scp] > out.scp   (reads standard input without in.scp)
# The key is field N of each in.scp line (N = 1 by default, counted from 1); only the first field of
# each id_list line matters. Lines are printed unchanged, in the order of in.scp. A line of in.scp
# with fewer than N fields, or a blank line in either file, is an error naming file and line.
use strict;
use warnings;

my $usage = "Usage: filter_scp.pl [--exclude] [-f N] id_list [in.scp] > out.scp\n"
  . "Prints the lines of in.scp (or standard input) whose N-th field (N=1 by default) is the first\n"
  . "field of a line of id_list; with --exclude, those whose N-th field is not.\n";

my $exclude = 0;
my $field = 1;
while (@ARGV) {
  if ($ARGV[0] eq '--exclude') {
    $exclude = 1;
    shift @ARGV;
  } elsif ($ARGV[0] eq '-f') {
    @ARGV >= 2 or die "ERROR: option -f needs a field number\n$usage";
    $field = $ARGV[1];
    splice(@ARGV, 0, 2);
    $field =~ /^[1-9][0-9]*$/ or die "ERROR: -f takes a field number from 1 up, got '$field'\n";
  } elsif ($ARGV[0] =~ /^--?h(elp)?$/) {
    print STDERR $usage;
    exit 0;
  } elsif ($ARGV[0] =~ /^-./) {
    die "ERROR: unknown option '$ARGV[0]'\n$usage";
  } else {
    last;
  }
}
if (@ARGV < 1 || @ARGV > 2) {
  die $usage;
}

my $id_list = shift @ARGV;
my %wanted;
open(my $ids, '<', $id_list) or die "ERROR: $id_list: cannot open the id list: $!\n";
while (my $line = <$ids>) {
  my @f = split(' ', $line);
  @f or die "ERROR: $id_list:$.: empty line\n";
  $wanted{$f[0]} = 1;
}
close($ids);

while (my $line = <>) {
  my @f = split(' ', $line);
  if (@f < $field) {
    my $where = ($ARGV eq '-' ? '<stdin>' : $ARGV) . ":$.";
    die "ERROR: $where: " . (@f ? "has " . scalar(@f) . " field(s); cannot filter on field $field" : "empty line") . "\n";
  }
  my $in = exists $wanted{$f[$field - 1]};
  print $line if ($in xor $exclude);
}
