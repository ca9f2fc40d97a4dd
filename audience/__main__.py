from audience.cli import main

main()
