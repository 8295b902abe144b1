import SMTPClient

SMTPClientDaemon.main()
