module cloud58.local/images/pause

go 1.22
