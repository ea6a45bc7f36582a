from dstack_prefect.cli import main

main()
