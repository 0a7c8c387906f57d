# Intake throughput and p99 latency against connections: the daemon with each store engine, and
# nginx (bench/summarize.py writes intake.dat; an engine not run is NaN there, and not drawn). gnuplot -e "dat='build/bench/intake.dat'; png='build/bench/intake.png'" bench/intake.gp
set terminal pngcairo size 1100,440 font "DejaVu Sans,10"
set output png
set multiplot layout 1,2 title "dsr-connector intake, SQLite and PostgreSQL stores, vs nginx (fixed 202), wrk, 2-core machine"
set logscale x 2
set xtics (8, 16, 32, 64, 128)
set xrange [7:150]
set xlabel "connections"
set grid
set key center right
set ylabel "requests/s"
set yrange [0:*]
plot dat using 1:2 with linespoints lw 2 pt 7 title "dsr-connector, SQLite", \
     dat using 1:6 with linespoints lw 2 pt 9 title "dsr-connector, PostgreSQL", \
     dat using 1:4 with linespoints lw 2 pt 5 title "nginx"
set ylabel "p99 latency, ms"
set key top left
plot dat using 1:3 with linespoints lw 2 pt 7 title "dsr-connector, SQLite", \
     dat using 1:7 with linespoints lw 2 pt 9 title "dsr-connector, PostgreSQL", \
     dat using 1:5 with linespoints lw 2 pt 5 title "nginx"
unset multiplot
