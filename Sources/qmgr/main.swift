import QueueManager

QueueManager.main()
