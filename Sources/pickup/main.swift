import Pickup

PickupDaemon.main()
