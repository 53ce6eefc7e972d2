"""Scripts that print figures (speed, memory, scale, model); run as ``python -m benchmarks.perf.<name>``.

They sit at the top of the import arrows: they may import cluster/, actors/ and bus/;
nothing else imports them."""
