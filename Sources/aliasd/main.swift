import AliasService

AliasDaemon.main()
