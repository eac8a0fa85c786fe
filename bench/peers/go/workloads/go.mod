module csp-bench-workloads

go 1.19
