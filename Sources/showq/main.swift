import QueueInspection

ShowqDaemon.main()
