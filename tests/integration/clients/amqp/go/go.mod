module opendms.test/amqp-go-workload

go 1.22

require github.com/rabbitmq/amqp091-go v1.17.0
