import LocalDelivery

LocalDeliveryAgent.main()
