module rehome.local/go

go 1.19
