from crowdwatch.cli import main

main()
