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
        "native/reuseport.cc"
      ],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
