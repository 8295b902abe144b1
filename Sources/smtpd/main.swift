import SMTPServer

SMTPServerDaemon.main()
