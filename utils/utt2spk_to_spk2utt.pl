#!/usr/bin/env perl
# Convert an utt2spk table ("utt speaker" per line) into spk2utt ("speaker utt1 utt2 ..." per line),
# as Kaldi's utils/utt2spk_to_spk2utt.pl does: speakers in the order they are first seen, each
# speaker's utterances in input order (sort the input first to get a sorted spk2utt).
#   utils/utt2spk_to_spk2utt.pl [utt2spk ...] > spk2utt      (reads standard input without arguments)
# A line without exactly two fields, or an utterance given twice, is an error naming file and line.
use strict;
use warnings;

if (@ARGV && $ARGV[0] =~ /^--?h(elp)?$/) {
  print STDERR "Usage: utt2spk_to_spk2utt.pl [utt2spk ...] > spk2utt\n";
  exit 0;
}

my (@speakers, %utts_of, %line_of_utt);
while (my $line = <>) {
  my $where = ($ARGV eq '-' ? '<stdin>' : $ARGV) . ":$.";
  $line =~ s/\r?\n$//;
  my @f = split(' ', $line);
  if (@f != 2) {
    my $n = scalar(@f);
    die "ERROR: $where: expected 'utterance speaker' (2 fields), got $n field" . ($n == 1 ? '' : 's') . "\n";
  }
  my ($utt, $spk) = @f;
  if (exists $line_of_utt{$utt}) {
    die "ERROR: $where: utterance '$utt' is given again (first at $line_of_utt{$utt})\n";
  }
  $line_of_utt{$utt} = $where;
  if (!exists $utts_of{$spk}) {
    push @speakers, $spk;
    $utts_of{$spk} = [];
  }
  push @{$utts_of{$spk}}, $utt;
} continue {
  close ARGV if eof;  # line numbers restart in each file
}
foreach my $spk (@speakers) {
  print join(' ', $spk, @{$utts_of{$spk}}), "\n";
}
