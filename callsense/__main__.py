from callsense.cli import main

main()
