// Command hello is what testbin's test builds.
package main

import "fmt"

func main() { fmt.Println("hello") }
