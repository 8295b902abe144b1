import Administration

HikyakuCommand.main()
