from promos.cli import main

main()
