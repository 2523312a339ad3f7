module github.com/lbdproject/lbd

go 1.26.8
