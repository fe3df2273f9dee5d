print("netstack")
