import Master

MasterProcess.main()
