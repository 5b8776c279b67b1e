#!/usr/bin/env perl
# Convert a spk2utt table ("speaker utt1 utt2 ..." per line) into utt2spk ("utt speaker" per line),
# as Kaldi's utils/spk2utt_to_utt2spk.pl does: one line per utterance, in input order (sort the output
# to get a sorted utt2spk).
#   utils/spk2utt_to_utt2spk.pl [spk2utt ...] > utt2spk      (reads standard input without arguments)
# A line with a speaker but no utterance, or an utterance given twice, is an error naming file and line.
use strict;
use warnings;

if (@ARGV && $ARGV[0] =~ /^--?h(elp)?$/) {
  print STDERR "Usage: spk2utt_to_utt2spk.pl [spk2utt ...] > utt2spk\n";
  exit 0;
}

my %line_of_utt;
while (my $line = <>) {
  my $where = ($ARGV eq '-' ? '<stdin>' : $ARGV) . ":$.";
  $line =~ s/\r?\n$//;
  my @f = split(' ', $line);
  if (@f < 2) {
    die "ERROR: $where: " . (@f ? "speaker '$f[0]' has no utterance" : "empty line")
      . "; expected 'speaker utt1 utt2 ...'\n";
  }
  my $spk = shift @f;
  foreach my $utt (@f) {
    if (exists $line_of_utt{$utt}) {
      die "ERROR: $where: utterance '$utt' is given again (first at $line_of_utt{$utt})\n";
    }
    $line_of_utt{$utt} = $where;
    print "$utt $spk\n";
  }
} continue {
  close ARGV if eof;
}
