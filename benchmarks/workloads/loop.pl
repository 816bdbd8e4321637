# Interpreter-heavy loop for the perl workload: ops, sub calls, hashes,
# string formatting and regexes. Usage: perl loop.pl N
use strict; use warnings;
my $n = shift // 100000;
my ($acc, %count, $s) = (0);
sub step { my ($i, $a) = @_; return $i % 3 == 0 ? $a + $i * 7 : $i % 3 == 1 ? $a ^ ($i << 2) : $a - ($i >> 1); }
for my $i (0 .. $n - 1) {
    $acc = step($i, $acc) & 0xFFFFFFFF;
    my $key = sprintf("k%d", $i & 255);
    $count{$key}++;
    $s = "id=$i;v=$acc";
    $acc += $1 if $s =~ /v=(\d)/;
}
print join(" ", $n, $acc, scalar(keys %count)), "\n";
