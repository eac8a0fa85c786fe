module csp/bench/peers/go

go 1.19
