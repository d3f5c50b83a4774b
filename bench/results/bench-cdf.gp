set terminal pngcairo size 1400,600
set output 'bench/results/bench-cdf.png'
set multiplot layout 1,2 title 'rehome bench: latency CDF (tcg, TCG: inflated)'
set key bottom right
set grid
set ylabel 'fraction of forks'
set yrange [0:1]
set xlabel 'resume -> applied ack (ms)'
plot 'bench/results/bench-cdf.dat' index 0 using 1:2 with steps lw 2 lc 1 dt 1 title 'auto', 'bench/results/bench-cdf.dat' index 1 using 1:2 with steps lw 2 lc 2 dt 1 title 'vmgenid-kmsg', 'bench/results/bench-cdf.dat' index 2 using 1:2 with steps lw 2 lc 3 dt 1 title 'poll', 'bench/results/bench-cdf.dat' index 3 using 1:2 with steps lw 2 lc 4 dt 1 title 'warm pool', 'bench/results/bench-cdf.dat' index 4 using 1:2 with steps lw 2 lc 5 dt 1 title 'cold spawn', 'bench/results/bench-cdf.dat' index 5 using 1:2 with steps lw 2 lc 6 dt 1 title 'warm (tmpfs)', 'bench/results/bench-cdf.dat' index 6 using 1:2 with steps lw 2 lc 7 dt 1 title 'cold, no prefetch', 'bench/results/bench-cdf.dat' index 7 using 1:2 with steps lw 2 lc 8 dt 1 title 'cold, 64 MiB window', 'bench/results/bench-cdf.dat' index 8 using 1:2 with steps lw 2 lc 1 dt 2 title 'cold, recorded working set'
set xlabel 'fork total (ms)'
plot 'bench/results/bench-cdf.dat' index 9 using 1:2 with steps lw 2 lc 1 dt 1 title 'auto', 'bench/results/bench-cdf.dat' index 10 using 1:2 with steps lw 2 lc 2 dt 1 title 'vmgenid-kmsg', 'bench/results/bench-cdf.dat' index 11 using 1:2 with steps lw 2 lc 3 dt 1 title 'poll', 'bench/results/bench-cdf.dat' index 12 using 1:2 with steps lw 2 lc 4 dt 1 title 'warm pool', 'bench/results/bench-cdf.dat' index 13 using 1:2 with steps lw 2 lc 5 dt 1 title 'cold spawn', 'bench/results/bench-cdf.dat' index 14 using 1:2 with steps lw 2 lc 6 dt 1 title 'warm (tmpfs)', 'bench/results/bench-cdf.dat' index 15 using 1:2 with steps lw 2 lc 7 dt 1 title 'cold, no prefetch', 'bench/results/bench-cdf.dat' index 16 using 1:2 with steps lw 2 lc 8 dt 1 title 'cold, 64 MiB window', 'bench/results/bench-cdf.dat' index 17 using 1:2 with steps lw 2 lc 1 dt 2 title 'cold, recorded working set'
unset multiplot
