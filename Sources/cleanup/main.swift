import Cleanup

CleanupDaemon.main()
