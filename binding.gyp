{
  "targets": [
    {
      "target_name": "nserve",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/socket.cc",
        "native/fdpass.cc",
        "native/exec.cc",
        "native/fds.cc",
        "native/notify.cc",
        "native/reuseport.cc",
        "native/lock.cc"
      ],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    },
    {
      "target_name": "nserve_signals",
      "type": "shared_library",
      "product_prefix": "",
      "product_extension": "so",
      "sources": ["native/early_signals.cc"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"]
    }
  ]
}
