from highrate.cli.entry import console_main

console_main()
